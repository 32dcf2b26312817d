"""The `can` HAL driver: real power-module families and our I/O board over python-can, and the plant that answers
them (`plant.py`). Family names: `family.family_names()`; `make_hal("can:<family>", ...)` builds the driver."""

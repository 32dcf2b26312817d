"""Generated EXI codecs, one module per schema set (see tools/exigen)."""

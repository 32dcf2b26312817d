"""mcs-v2g: the application on top of the stack. The `mcs-v2g` command and the composition roots that assemble a
`Charger` (evse_emulator) and a `Truck` (ev_emulator) on one `Clock`: `sim` today, `depot` and the conformance
runner next."""

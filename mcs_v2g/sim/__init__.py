"""`mcs-v2g sim`: the emulated charger and truck in one closed loop on a virtual clock."""

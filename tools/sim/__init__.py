"""`mcs-v2g sim`: the emulated charger and truck in one closed loop, in accelerated time."""

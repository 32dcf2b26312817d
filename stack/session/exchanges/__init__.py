"""One module per -20 message family: the SECC's answer, the EVCC's request and reaction, the rules and
conversions of that family. The rulebook (`stack.session.rulebook`) joins them into one table."""

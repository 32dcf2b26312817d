"""Small examples of using the stack on its own (not part of the installed product)."""

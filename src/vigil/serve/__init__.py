"""`vigil serve`: every role of vigil in one command, as supervised processes."""

"""AWS and network implementations of the ports."""

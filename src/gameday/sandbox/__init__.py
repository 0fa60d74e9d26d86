"""The local sandbox: a cell made of real processes on loopback that can be broken for real."""

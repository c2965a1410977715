"""Data sets generated on the spot (nothing is downloaded at run time)."""

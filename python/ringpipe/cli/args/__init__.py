"""Argument builders shared by several commands and by the MPI ranks' programs."""

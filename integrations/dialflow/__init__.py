"""Dialflow: how many live agents of a ring group are free right now."""

"""Sweeps: the runs of a results table described in one spec file, run as child runs of one MLflow
run (in this process or as Ray Tune trials), and the table made over them."""

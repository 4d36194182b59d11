"""Running notebook series: planning (plan.py), executing them with papermill here or on a Dask cluster
(execute.py, cluster.py), the output folder's lock (lock.py) and the executed notebooks' files (nbfiles.py)."""

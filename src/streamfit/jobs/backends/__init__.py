"""Where runs happen: ``local`` (detached processes on this machine) and ``ray`` (a Ray
cluster, through its Jobs API). ``base`` holds the protocol both follow."""

"""The kubelet: pod workers, the prober, CrashLoopBackOff, container runtimes, cgroups, volumes."""

"""Classroom mode: one box serves a class.

JupyterHub with accounts from a roster (one-time codes that set the password on first login), each
student's server and Dask cluster isolated by the privilege afbox has (unix users and cgroups as
root, bubblewrap otherwise; refused where neither works), class content copied into new homes, and
admission and culling so a class arriving at once does not take the box down.

  paths       where homes, accounts and the hub's state live
  roster      accounts: who, one-time codes, password hashes
  authenticator  the hub's login (codes once, passwords after, throttled), tokens at spawn
  isolation   which isolation this host allows, and the commands and preexec it takes
  limits      memory, CPU and task limits per student (cgroup v1/v2 or systemd), one small module
  spawner     the students' servers: homes, tokens, isolation, admission
  config      the hub's config file, rendered from the facility
"""

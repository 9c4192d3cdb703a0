"""Code that runs inside other programs, loaded by them by name: Jupyter's identity provider, the
Dask gateway's authenticator and backend, the Dask dashboards' token check (a preload)."""

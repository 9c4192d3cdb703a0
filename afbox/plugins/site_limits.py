"""Gateway clusters of another site's users (`<site>-<sub>`): that site's own limit on workers, and
an environment without this facility's owner token, so their workers read data with their own
site token only (afbox.sites.remote hands it to them)."""
from __future__ import annotations

from dask_gateway_server.options import Options

from ..auth.facility_auth import site_trust
from ..services.gateway import MAX_WORKERS


def site_options(environment: dict[str, str]):
    """c.FacilityBackend.cluster_options: the facility's defaults for its own users, a site's limits
    and `environment` (no owner token) for that site's users."""
    trust = site_trust()

    def for_user(user):
        site = next((g.removeprefix("site:") for g in user.groups if g.startswith("site:")), None)
        if site is None:
            return Options()
        policy = next((p for p in (trust.policies().values() if trust else ()) if p.name == site), None)
        limit = min(policy.max_workers or MAX_WORKERS, MAX_WORKERS) if policy else 0

        def handler(options, user):
            return {"environment": dict(environment), "cluster_max_workers": limit}
        return Options(handler=handler)
    return for_user

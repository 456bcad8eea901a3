"""Which AWS regions exist, as botocore knows them (no hand-kept list).

Importing this module is cheap: botocore's endpoint data is loaded on the first question only.
"""

from __future__ import annotations

import difflib
import functools


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region botocore knows for RDS, in every partition (aws, aws-cn, aws-us-gov, ...):
    the regions moto keeps state for."""
    import botocore.session

    session = botocore.session.get_session()
    return frozenset(region for partition in session.get_available_partitions()
                     for region in session.get_available_regions("rds", partition))


def region_problem(region: str) -> str | None:
    """None for a region botocore knows, else a sentence saying so (with close names)."""
    regions = known_regions()
    if region in regions:
        return None
    close = difflib.get_close_matches(region, sorted(regions), n=3)
    suggestion = f" (did you mean {', '.join(close)}?)" if close else ""
    return (f"unknown AWS region {region!r}{suggestion}; botocore knows {len(regions)} RDS "
            "regions, e.g. us-east-1, eu-west-1")

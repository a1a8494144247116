"""Scheduled incremental reselection: rescore and reselect only what is stale.

Extraction work is started by the sensors; this schedule covers what they leave:
scores and subsets whose inputs changed (a new shard's cache, a new graph, an edited
``budget_fraction``). A partition whose own inputs are still stale is left for a later
tick, so no run reads an input that is about to be replaced. The mixture follows via
its eager automation condition.
"""

import dagster as dg

from nag_assets.graph_assets import reselect_job
from nag_core.freshness import State, split_key
from resources import NagHomeResource

RESELECT = ("influence_scores", "selected_subset")
UPSTREAM_OF_SCORES = ("raw_pool", "dedup_pool", "activation_cache", "target_examples", "target_activations", "neuron_graph")


def stale_requests(state: State) -> list[dg.RunRequest]:
    if any(state.stale(asset) for asset in UPSTREAM_OF_SCORES):
        return []
    stale = {asset: set(state.stale(asset)) for asset in RESELECT}
    requests = []
    for key in sorted(set().union(*stale.values())):
        # A fresh score with a stale subset (say, a new budget) reselects without rescoring.
        assets = [a for a in RESELECT if key in stale[a]] if key not in stale["influence_scores"] else list(RESELECT)
        requests.append(dg.RunRequest(partition_key=dg.MultiPartitionKey(split_key("influence_scores", key)),
                                      asset_selection=[dg.AssetKey(a) for a in assets],
                                      run_key=f"reselect:{key}:" + ":".join(str(state.fingerprint(a, key)) for a in assets)))
    return requests


@dg.schedule(cron_schedule="0 * * * *", job=reselect_job, default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Hourly: rescore and reselect stale (target, model) partitions only.")
def reselect_schedule(context: dg.ScheduleEvaluationContext, nag_home: NagHomeResource):
    requests = stale_requests(nag_home.state())
    return requests or dg.SkipReason("no stale scores or subsets, or upstream work still pending")

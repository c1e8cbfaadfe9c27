"""memory: the peak estimate's terms and the plan's choices for a budget."""

import numpy as np
import pytest

from minigencast import config, memory, network


@pytest.fixture(scope="module")
def mini_sizes():
    cfg = config.gencast_1p0deg_mini()
    graphs = network.build_graphs(cfg, np.linspace(-90, 90, 181), np.arange(360.0))
    return memory.sizes(cfg, graphs)


def test_sizes_are_the_mini_graph_facts(mini_sizes):
    s = mini_sizes
    assert (s.grid_nodes, s.mesh_nodes) == (65160, 2562)
    assert (s.grid2mesh_edges, s.mesh2grid_edges) == (102486, 195480)
    assert s.node_features == 176 + 4 + 84 + 3 and s.parameters == 57492612


def test_dense_attention_term_is_three_logit_copies(mini_sizes):
    att = memory.attention_bytes(mini_sizes, "mha", None)
    assert att["transient"] == 3 * 4 * 4 * 2562**2  # float32 [H, N, N], H = 4
    assert att["layout"] == 2562**2  # the boolean mask


def test_plan_keeps_everything_whole_when_it_fits(mini_sizes):
    p = memory.plan(mini_sizes, "mha", int(100 * memory.GB), num_samples=8)
    assert p.chunks == network.Chunks() and p.members_per_batch == 8
    assert p.estimate["peak"] <= p.budget


def test_plan_chunks_and_groups_to_fit_a_small_budget(mini_sizes):
    whole = memory.estimate(mini_sizes, "mha", forecast=True)["peak"]
    budget = int(0.8 * whole)
    p = memory.plan(mini_sizes, "mha", budget, num_samples=8, forecast=True)
    assert 1 <= p.members_per_batch < 8 and p.chunks.grid_nodes is not None
    assert p.estimate["peak"] <= budget < whole


def test_plan_refuses_an_impossible_budget_naming_the_flags(mini_sizes):
    with pytest.raises(memory.MemoryBudgetError, match="--members_per_batch 1.*--attention"):
        memory.plan(mini_sizes, "mha", int(0.5 * memory.GB), num_samples=8)


@pytest.mark.parametrize("attention", ["mha", "splash_mha"])
def test_plan_groups_as_many_members_as_a_scan_finds(mini_sizes, attention):
    """The bisection for the group size returns what trying every size from
    `num_samples` down finds (the largest that fits), and 10^9 members plan at once."""

    def scan(budget, n):
        for m in range(n, 0, -1):
            try:
                memory.plan(mini_sizes, attention, budget, members_per_batch=m, forecast=True)
                return m
            except memory.MemoryBudgetError:
                continue

    for gb in (2, 3, 5, 8, 13, 21, 34):
        budget = int(gb * memory.GB)
        for n in (1, 7, 40):
            p = memory.plan(mini_sizes, attention, budget, num_samples=n, forecast=True)
            assert p.members_per_batch == scan(budget, n), (gb, n)
        huge = memory.plan(mini_sizes, attention, budget, num_samples=10**9, forecast=True)
        assert huge.members_per_batch == scan(budget, 200) < 200

"""`minigencast info` and its API twin `info.info`."""

import json
import os
import pathlib

import pytest

from minigencast import cli, config, graphs, info


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGENCAST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(graphs, "_MEMORY_CACHE", {})


def _run(capsys, *argv):
    assert cli.main(["info", *argv]) == 0
    out = capsys.readouterr().out.strip()
    assert "\n" not in out  # one JSON object on one line
    return json.loads(out)


def _parity_meta():
    for c in [
        os.environ.get("MINIGENCAST_PARITY_DIR"),
        pathlib.Path(__file__).parent / "parity" / "open",
        pathlib.Path("/work/shared/parity/open"),
    ]:
        if c and (pathlib.Path(c) / "meta.json").exists():
            return json.loads((pathlib.Path(c) / "meta.json").read_text())
    pytest.skip("parity meta.json not found")


def test_info_reproduces_parity_graph_facts(capsys):
    meta = _parity_meta()
    facts = meta["graph"]
    arch = meta["denoiser_architecture_config"]
    k = arch["sparse_transformer_config"]["attention_k_hop"]
    grid = f"{meta['grid']['n_lat']}x{meta['grid']['n_lon']}"
    out = _run(
        capsys, "--preset", "tiny", "--grid", grid, "--mesh_size", str(arch["mesh_size"]),
        "--attention_k_hop", str(k),
    )  # fmt: skip
    assert out["grid"] == [meta["grid"]["n_lat"], meta["grid"]["n_lon"]]
    assert out["grid_nodes"] == facts["num_grid_nodes"]
    assert out["mesh_nodes"] == facts["num_mesh_nodes"]
    assert out["mesh_edges"] == facts["num_mesh_edges_directed"]
    assert out["grid2mesh_edges"] == facts["num_grid2mesh_edges"]
    assert out["mesh2grid_edges"] == facts["num_mesh2grid_edges"]
    assert out["attention_mask_nonzeros"] == facts["attention_mask_nonzeros"]
    assert out["attention_neighbours_max"] == facts["attention_mask_neighbours_per_node_max"]
    assert out["attention_tri_block_size"] == facts["attention_mask_tri_block_size"]
    assert out["grid2mesh_max_in_degree"] == facts["grid2mesh_max_in_degree"]
    assert out["grid2mesh_radius"] == pytest.approx(facts["grid2mesh_query_radius"], abs=1e-7)
    memory = out["memory_bytes"]
    n = facts["num_mesh_nodes"]
    assert memory["mask_dense"] == n * n
    assert memory["mask_coo"] == 8 * facts["attention_mask_nonzeros"]


def test_info_mini_preset_matches_deepmind(capsys):
    out = _run(capsys, "--preset", "gencast_1p0deg_mini")
    # Source: DeepMind's d39de19 graphs and Haiku init at the Mini configuration
    # (docs/design.md §6.4, §6.9, §9.2).
    assert out["grid"] == [181, 360]
    assert out["mesh_nodes"] == 2562 and out["mesh_edges"] == 15360
    assert out["grid2mesh_edges"] == 102486
    assert out["mesh2grid_edges"] == 195480
    assert out["attention_mask_nonzeros"] == 1907922
    assert out["grid2mesh_max_in_degree"] == 937
    assert out["attention_neighbours_max"] == 766
    assert out["attention_tri_block_size"] == 1297
    assert out["parameters"] == 57492612


def test_info_api_twin_equals_cli(capsys):
    cfg = config.preset("tiny")
    assert _run(capsys, "--preset", "tiny") == json.loads(json.dumps(info.info(cfg)))


def test_info_bad_grid(capsys):
    with pytest.raises(SystemExit) as e:  # argparse-level: usage error, exit 2
        cli.main(["info", "--preset", "tiny", "--grid", "13by24"])
    assert e.value.code == 2
    assert "181x360" in capsys.readouterr().err


def test_flags_have_one_spelling_and_the_dashed_one_is_a_hidden_alias():
    parser = cli.build_parser()
    for argv in (
        ["--mesh_size", "3", "--attention_k_hop", "2"],
        ["--mesh-size", "3", "--attention-k-hop", "2"],
    ):
        args = parser.parse_args(["info", "--preset", "tiny", *argv])
        assert (args.mesh_size, args.attention_k_hop) == (3, 2)
    args = parser.parse_args(["info", "--preset", "tiny"])
    assert args.mesh_size is None and args.attention_k_hop is None
    info_parser = parser._subparsers._group_actions[0].choices["info"]
    assert "--mesh_size" in info_parser.format_help()
    assert "--mesh-size" not in info_parser.format_help()

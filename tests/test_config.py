import copy

import pytest
import yaml

from genbench.config import ConfigError, cells, config_hash, fmt_cfg, select, validate_config


def load(root, name):
    with open(root / "config" / name) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_validate(root, name):
    cfg = validate_config(load(root, name))
    assert cells(cfg), "the sweep must produce cells"


def test_profiles_choose_no_config(root):
    """A profile says where jobs run, a config what runs: the paper run is
    `snakemake --profile profiles/slurm --configfile config/paper.yaml`, and every documented entry point names it."""
    for profile in sorted((root / "profiles").glob("*/config.yaml")):
        assert "configfile" not in yaml.safe_load(profile.read_text()), profile
    documented = "--profile profiles/slurm --configfile config/paper.yaml"
    for doc in ("README.md", "config/README.md", "profiles/slurm/config.yaml", "Makefile"):
        assert documented in (root / doc).read_text(), doc


def test_defaults_are_filled(default_config):
    del default_config["generation"]
    cfg = validate_config(default_config)
    assert cfg["generation"] == {"batch_size": 50, "shards": 1, "grid_size": 20, "threads": 2}
    assert cfg["models"]["sit_mini"]["train"]["class_dropout"] == 0.1


def test_typo_key_is_named(default_config):
    default_config["models"]["sit_mini"]["famly"] = default_config["models"]["sit_mini"].pop("family")
    with pytest.raises(ConfigError) as err:
        validate_config(default_config)
    msg = str(err.value)
    assert "famly" in msg and "models.sit_mini" in msg


def test_wrong_type_is_named(default_config):
    default_config["sweep"][0]["steps"] = ["four"]
    with pytest.raises(ConfigError, match=r"sweep\.0\.steps\.0: 'four' is not of type 'integer'"):
        validate_config(default_config)


def test_top_level_typo(default_config):
    default_config["scorng"] = {}
    with pytest.raises(ConfigError, match="scorng"):
        validate_config(default_config)


def test_unknown_reference_is_named(default_config):
    default_config["sweep"][0]["models"] = ["sit_mni"]
    with pytest.raises(ConfigError, match=r"sweep\.0\.models: unknown model 'sit_mni'"):
        validate_config(default_config)


def test_model_needs_train_or_weights(default_config):
    default_config["models"]["sit_mini"]["weights"] = {"path": "x.pt"}
    with pytest.raises(ConfigError, match="exactly one of 'train'"):
        validate_config(default_config)


def test_cells_and_naming(default_config):
    cfg = validate_config(default_config)
    cs = cells(cfg)
    expect = sum(len(b["models"]) * len(b["datasets"]) * len(b["steps"]) * len(b["cfg"]) * len(b["seeds"])
                 for b in cfg["sweep"])
    assert len(cs) == len(set(cs)) == expect == 29
    assert {c.setting for c in cs} >= {"steps2_cfg1", "steps8_cfg4", "steps1_cfg3"}
    assert fmt_cfg(1.0) == "1" and fmt_cfg(1.5) == "1.5" and fmt_cfg(7.25) == "7.25"


def test_select_and_hash(default_config):
    cfg = validate_config(default_config)
    sub = select(cfg, "seed", "models.sit_mini", "nothing.here")
    assert sub == {"seed": 0, "models": {"sit_mini": cfg["models"]["sit_mini"]}}
    other = copy.deepcopy(cfg)
    assert config_hash(other) == config_hash(cfg)
    other["seed"] = 1
    assert config_hash(other) != config_hash(cfg)


def test_cli_validate_and_cells(root, tmp_path, capsys):
    from genbench.cli import main

    assert main(["validate", str(root / "config/paper.yaml")]) == 0
    assert "valid (config hash" in capsys.readouterr().out
    assert main(["cells", str(root / "config/config.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "model\tdataset\tsteps\tcfg\tseed" and "sit_mini\tmw_val\t8\t2\t0" in lines
    bad = tmp_path / "bad.yaml"
    bad.write_text((root / "config/config.yaml").read_text().replace("seed: 0\n", "seed: zero\n", 1))
    assert main(["validate", str(bad)]) == 1
    assert "seed: 'zero' is not of type 'integer'" in capsys.readouterr().err


def test_text_image_metrics_need_their_embedders(default_config):
    from genbench.config import ConfigError, validate_config

    default_config["scoring"].pop("text_image")
    with pytest.raises(ConfigError, match=r"clip_score, csfid, csis, cmmd need scoring.text_image.clip"):
        validate_config(default_config)


def test_scaled_metric_needs_its_parts(default_config):
    from genbench.config import ConfigError, validate_config

    default_config["scoring"]["metrics"] = ["fid", "csfid", "clip_score"]
    default_config["figures"] = ["fid_vs_cfg"]
    validate_config(default_config)
    default_config["scoring"]["metrics"] = ["csfid", "clip_score"]
    with pytest.raises(ConfigError, match="'csfid' is computed from fid, clip_score; add fid"):
        validate_config(default_config)
    default_config["scoring"]["metrics"] = ["fid", "is", "clip_score", "mmhm"]
    with pytest.raises(ConfigError, match="'mmhm' is computed from fid, is, clip_score, pick_score; add pick_score"):
        validate_config(default_config)


def test_dinov2_metrics_need_a_dinov2_extractor(root):
    from genbench.config import ConfigError, load_config, validate_config

    cfg = load_config(root / "config/paper.yaml")
    cfg["scoring"]["dinov2"] = "inception"
    with pytest.raises(ConfigError, match="scoring.dinov2: 'inception' is not an extractor of kind dinov2"):
        validate_config(cfg)
    del cfg["scoring"]["dinov2"]
    with pytest.raises(ConfigError, match="fd_dinov2, kd_dinov2 need scoring.dinov2"):
        validate_config(cfg)


def test_sweep_per_steps_settings(root):
    """Regression: the sweep had one cfg list and one guidance interval per model for every step count; iMF's
    authors use omega 8.0 / [0.42, 0.62] at 1 NFE and omega 4.0 / [0.36, 0.64] at 2 NFE (paper.yaml)."""
    cfg = validate_config(load(root, "paper.yaml"))
    sampler = cfg["models"]["imeanflow"]["sampler"]
    assert sampler["guidance_interval"] == [0.42, 0.62]
    assert sampler["per_steps"] == {"2": {"guidance_interval": [0.36, 0.64]}}
    block = next(b for b in cfg["sweep"] if "per_steps" in b)
    mini = {**cfg, "sweep": [block]}
    assert {(c.steps, c.cfg) for c in cells(mini) if c.dataset == "imagenet_val"} == {(1, 8.0), (2, 4.0)}


def test_sweep_per_steps_errors(root):
    raw = load(root, "paper.yaml")
    bad = copy.deepcopy(raw)
    bad["sweep"].append({"models": ["imeanflow"], "datasets": ["imagenet_val"], "steps": [2], "cfg": [4.0],
                         "per_steps": {2: {"guidance_interval": [0.3, 0.7]}}})
    with pytest.raises(ConfigError, match=r"sweep\.\d+\.per_steps\.2\.guidance_interval: \[0\.3, 0\.7\] for model "
                                          r"'imeanflow' conflicts with \[0\.36, 0\.64\]"):
        validate_config(bad)
    bad = copy.deepcopy(raw)
    bad["sweep"].append({"models": ["imeanflow"], "datasets": ["imagenet_val"], "steps": [1], "cfg": [4.0],
                         "per_steps": {4: {"cfg": [2.0]}}})
    with pytest.raises(ConfigError, match=r"per_steps\.4: 4 is not one of this block's steps \[1\]"):
        validate_config(bad)
    bad = copy.deepcopy(raw)
    bad["sweep"].append({"models": ["sd35"], "datasets": ["imagenet_val"], "steps": [1], "cfg": [4.0],
                         "per_steps": {1: {"guidance_interval": [0.1, 0.9]}}})
    with pytest.raises(ConfigError, match="model 'sd35' \\(family sd35\\) has no per-steps sampler settings"):
        validate_config(bad)


def test_per_steps_interval_refused_for_guidance_as_input(default_config):
    """MeanFlow with guidance as a network input learns its interval in training: a per-steps interval for it is a
    config error at validation, not a failure of the generate job later."""
    from genbench.config import ConfigError, validate_config

    default_config["sweep"].append({"models": ["meanflow_mini"], "datasets": ["mw_val"], "steps": [1], "cfg": [2.0],
                                    "per_steps": {1: {"guidance_interval": [0.1, 0.9]}}})
    with pytest.raises(ConfigError, match="model 'meanflow_mini' takes guidance as a network input"):
        validate_config(default_config)

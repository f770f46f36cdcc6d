"""Adding a generator family, a feature extractor, a reconstructor or a figure is one new module plus one registry
entry (plus its env file, for a kind whose jobs run in their own env, or its report caption, for a figure) and the
config entry that uses it: in a copy of the workflow, each is added that way and nothing else is edited, and the dry
run plans its jobs with the env and resources its entry declares. The same snippets are the README's "Adding a ..."
sections."""

import hashlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from wfutil import copy_workflow, planned_job_details

ROOT = Path(__file__).resolve().parents[1]

GENERATOR = '''
import torch

from genbench.gen2d.registry import Generator
from genbench.gen2d.samplers import SampleResult


class NoiseGenerator(Generator):
    """Returns its initial noise, clipped: the smallest generator the generate rule can run."""

    @classmethod
    def load(cls, name, spec, checkpoint, runtime=None):
        return cls(name, spec)

    def noise_shape(self):
        return (3, 8, 8)

    def sample(self, labels, noise, steps, cfg, noise_source=None, prompts=None):
        return SampleResult(torch.clamp(noise, -1, 1), nfe=steps, forward_passes=steps)
'''

EXTRACTOR = '''
from genbench.features.registry import Extractor


class MeanColourExtractor(Extractor):
    preprocessing = "none; features: the per-channel mean of the uint8 image / 255"

    @classmethod
    def load(cls, name, spec, checkpoint, runtime=None):
        return cls(name, spec.get("batch_size", 128), runtime)

    def _forward(self, images):
        return {"features": images.reshape(len(images), -1, 3).mean(axis=1) / 255.0}
'''

RECONSTRUCTOR = '''
import trimesh

from genbench.recon3d.reconstructors import Reconstruction, Reconstructor


class SphereReconstructor(Reconstructor):
    """The same sphere for every input."""

    def reconstruct(self, rgba, view, seed, item):
        return Reconstruction("mesh", "model", mesh=trimesh.creation.icosphere(2, 0.5))
'''

FIGURE = '''
import matplotlib.pyplot as plt

from genbench.plots.figures import save_data, save_figure


def draw(table, pdf, png, data, metric):
    rows = table[table["metric"] == metric].sort_values("cfg")
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(rows["cfg"], rows["value"], "o")
    ax.set(xlabel="guidance scale", ylabel=metric)
    save_figure(fig, pdf, png)
    save_data(rows, data)
    return rows
'''

# (file, the line after which the entry goes, the entry)
ENTRIES = [
    ("workflow/genbench/catalog.py", 'GENERATORS: Registry[Any] = Registry("generator family", {',
     '    "noise": Plugin("genbench.gen2d.noise:NoiseGenerator", env="noise", gpus=2),'),
    ("workflow/genbench/catalog.py", 'EXTRACTORS: Registry[Any] = Registry("feature extractor kind", {',
     '    "mean_colour": Plugin("genbench.features.mean_colour:MeanColourExtractor"),'),
    ("workflow/genbench/catalog.py", 'RECONSTRUCTORS: Registry[Any] = Registry("3D reconstructor kind", {',
     '    "sphere": Plugin("genbench.recon3d.sphere:SphereReconstructor", env="sphere", gpus=1),'),
    ("workflow/genbench/plots/registry.py", "    for f in (",
     '        Figure("fid_points", "genbench.plots.fid_points:draw", "fid", intervals=False),'),
]

NEW_FILES = {
    "workflow/genbench/gen2d/noise.py": GENERATOR,
    "workflow/genbench/features/mean_colour.py": EXTRACTOR,
    "workflow/genbench/recon3d/sphere.py": RECONSTRUCTOR,
    "workflow/genbench/plots/fid_points.py": FIGURE,
    "workflow/envs/noise.yaml": None,  # the family's own env (a copy of gen2d.yaml stands in for its packages)
    "workflow/envs/sphere.yaml": None,  # the reconstructor's
    "workflow/report/figures/fid_points.rst": "FID of each cell against the guidance scale, one point per cell.\n",
}
CONFIG = "config/adding.yaml"


def _add_plugins(wd: Path) -> None:
    for path, content in NEW_FILES.items():
        if content is None:
            shutil.copy2(wd / "workflow/envs/gen2d.yaml", wd / path)
        else:
            (wd / path).write_text(textwrap.dedent(content).lstrip())
    for path, after, entry in ENTRIES:
        text = (wd / path).read_text()
        assert text.count(after + "\n") == 1, (path, after)
        (wd / path).write_text(text.replace(after + "\n", f"{after}\n{entry}\n"))
    config = yaml.safe_load((wd / CONFIG).read_text())
    config["models"]["noise_m"] = {"family": "noise", "weights": {"path": "resources/weights/none.pt"},
                                   "sampler": {"method": "euler"}}
    config["sweep"].append({"models": ["noise_m"], "datasets": ["mw_val"], "steps": [1], "cfg": [1.0]})
    config["extractors"]["colour"] = {"kind": "mean_colour"}
    config["scoring"]["extractor"] = "colour"
    # sFID needs a spatial layer the new extractor does not declare (the config check says so)
    config["scoring"]["metrics"] = [m for m in config["scoring"]["metrics"] if m != "sfid"]
    config["reconstructors"]["ball"] = {"kind": "sphere"}
    config["recon3d"]["models"].append("ball")
    config["figures"].append("fid_points")
    (wd / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))


def _digests(wd: Path) -> dict[str, str]:
    return {str(p.relative_to(wd)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(wd.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def added(tmp_path_factory):
    wd = copy_workflow(ROOT, tmp_path_factory.mktemp("adding"))
    shutil.copy2(ROOT / "tests/config/tiny.yaml", wd / CONFIG)
    before = _digests(wd)
    _add_plugins(wd)
    return wd, before


def test_each_kind_is_one_module_one_entry_and_its_config(added):
    wd, before = added
    after = _digests(wd)
    new = set(after) - set(before)
    changed = {p for p in before if after.get(p) != before[p]}
    assert new == set(NEW_FILES)
    assert changed == {"workflow/genbench/catalog.py", "workflow/genbench/plots/registry.py", CONFIG}
    assert len(new) + len(changed) == 10  # 4 modules, 2 env files, 1 caption, the 2 registries, the config


def test_the_dry_run_plans_each_with_its_declared_env_and_resources(added):
    wd, _ = added
    jobs = planned_job_details(wd, "--cores", "4", "--configfile", CONFIG)

    def planned(rule, **wildcards):
        return [j for j in jobs if j["rule"] == rule and all(j["wildcards"].get(k) == v for k, v in wildcards.items())]

    def env(job):
        return Path(job["conda"]).name

    generate = planned("generate", model="noise_m")
    assert len(generate) == 1 and env(generate[0]) == "noise.yaml" and generate[0]["resources"]["gpu"] == "2"
    assert {env(j) for j in planned("generate")} == {"gen2d.yaml", "noise.yaml"}  # the other families keep theirs
    real = planned("features_real", extractor="colour")
    assert {j["wildcards"]["dataset"] for j in real} >= {"mw_val", "mw_v2"}
    assert all(env(j) == "metrics.yaml" and j["resources"]["gpu"] == "1" for j in real)
    assert any("results/features/colour/gen/noise_m/mw_val/steps1_cfg1/seed0.npz" in j["output"]
               for j in planned("cell_features"))
    ball = planned("reconstruct_3d", recon="ball")
    assert {j["wildcards"]["dataset3d"] for j in ball} == {"mw_phantoms", "mw_solids"}
    assert all(env(j) == "sphere.yaml" and j["resources"]["gpu"] == "1" and j["resources"]["runtime"] == "720"
               for j in ball)
    ceiling = planned("reconstruct_3d", recon="ceiling")
    assert ceiling and all(env(j) == "mesh.yaml" and j["resources"]["gpu"] == "0" for j in ceiling)
    (figure,) = planned("figure_fid_points")
    assert env(figure) == "plots.yaml" and "results/figures/fid_points.pdf" in figure["output"]
    assert figure["input"] == ["results/tables/gen2d_metrics.parquet"]


def test_the_added_modules_load_and_run_through_their_entries(added):
    """The entries' targets load the new modules (nothing else registers them) and each runs."""
    wd, _ = added
    code = textwrap.dedent("""
        import numpy as np, pandas as pd, torch
        from genbench.catalog import EXTRACTORS, GENERATORS, RECONSTRUCTORS
        from genbench.plots.figures import draw_figure

        gen = GENERATORS.lookup("noise").load("noise_m", {}, None)
        out = gen.sample(torch.zeros(2, dtype=torch.long), 3 * torch.ones(2, *gen.noise_shape()), 1, 1.0)
        assert out.x.shape == (2, 3, 8, 8) and float(out.x.max()) == 1.0
        images = np.full((2, 4, 4, 3), 51, np.uint8)
        feats = EXTRACTORS.lookup("mean_colour").load("colour", {}, None).extract(images, "set")
        assert np.allclose(feats["features"], 0.2)
        rec = RECONSTRUCTORS.lookup("sphere")("ball", {}).reconstruct(np.zeros((8, 8, 4), np.uint8), None, 0, {})
        assert rec.mesh.is_watertight
        table = pd.DataFrame({"metric": ["fid", "fid", "is"], "cfg": [2.0, 1.0, 1.0], "value": [3.0, 4.0, 5.0]})
        rows = draw_figure("fid_points", table, "f.pdf", "f.png", "f.csv", confidence=0.9)
        assert list(rows["value"]) == [4.0, 3.0]
    """)
    subprocess.run([sys.executable, "-c", code], cwd=wd / "workflow", check=True)

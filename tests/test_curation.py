"""The reLAIONet curation stages on hand-written inputs: LAIONet lemma matching, img2dataset's layout, the
automatic checks (undecodable, truncated and decompression-bomb images, size, aspect, near duplicates,
NSFW / watermark columns), the CLIP text filter with a real open_clip model, decision files and the final
policy, and reviewer agreement against scikit-learn's Cohen's kappa."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genbench.curate import finalize, lemmas, screen, source
from genbench.curate.decisions import DecisionError, DecisionLog, agreement, read_decisions
from genbench.data.classes import imagenet_classes, miniworld_classes

CLASSES = imagenet_classes()


@pytest.fixture(scope="module")
def index():
    return lemmas.LemmaIndex.from_classes(CLASSES)


@pytest.mark.parametrize("caption,labels", [
    ("My Golden Retriever at the beach", [207]),          # single synset, case-folded
    ("golden-retriever puppy!!", [207]),                   # punctuation -> spaces, also inside the lemma
    ("golden retrievers playing", []),                     # no stemming: the plural is not a WordNet lemma
    ("a goldfish and a tench", [0, 1]),                    # two synsets: dropped by match_captions
    ("unpaid invoice", []),                                # padded: 'paid' never matches inside 'unpaid'
    ("Tinca tinca (tench), fresh water", [0]),             # two lemmas of one synset
    ("a crane lifting steel", []),                         # 'crane' is shared by two synsets: never used
])
def test_lemma_matching(index, caption, labels):
    assert index.match(caption)[1] == labels


def test_lemma_index_counts(index):
    """LAIONet reports 1825 unique lemmas over 995 synsets; case-folding here merges 'Cardigan' (the corgi) with
    'cardigan' (the sweater), and punctuation-normalised lemmas differ slightly: 1816 over 993."""
    assert (len(index.lemma_to_label), index.n_synsets) == (1816, 993)
    assert index.dropped[" crane "] == [134, 517] and index.dropped[" cardigan "] == [264, 474]


def test_match_captions_columns():
    df = pd.DataFrame({"caption": ["vector icon of a star", "star and circle pattern", "abstract art", None]})
    out = lemmas.match_captions(df, miniworld_classes(["circle", "square", "triangle", "star"]))
    assert out["match"].tolist() == ["single", "multiple", "none", "none"]
    assert out["label_id"].tolist() == [3, -1, -1, -1] and out["label_name"].tolist() == ["star", "", "", ""]
    assert out["matched_labels"].tolist()[1] == "0;3"


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG")
    return path


def _img2dataset(folder, rows):
    """Write img2dataset's layout: shard parquet + files; rows: (caption, array or None, extra columns)."""
    recs = []
    for i, (cap, arr, extra) in enumerate(rows):
        key = f"00000{i:04d}"
        ok = arr is not None
        if ok:
            if isinstance(arr, bytes):
                (folder / "00000").mkdir(parents=True, exist_ok=True)
                (folder / "00000" / f"{key}.png").write_bytes(arr)
            else:
                _png(folder / "00000" / f"{key}.png", arr)
        recs.append({"key": key, "caption": cap, "url": f"http://x/{i}", "status": "success" if ok else
                     "failed_to_download", "error_message": None if ok else "timeout", **extra})
    pd.DataFrame(recs).to_parquet(folder / "00000.parquet")


def _shape(value, size=32, w=None):
    rng = np.random.default_rng(value)
    return rng.integers(0, 255, (size, w or size, 3), dtype=np.uint8)


def test_read_img2dataset(tmp_path):
    _img2dataset(tmp_path, [("a tench", _shape(1), {}), ("lost", None, {})])
    (tmp_path / "00000.parquet").rename(tmp_path / "00000.parquet")
    df = source.read_img2dataset(tmp_path)
    assert df["item_id"].tolist() == ["000000000", "000000001"]
    assert df["path"].tolist() == ["00000/000000000.png", ""]
    assert df["status"].tolist() == ["success", "failed_to_download"]
    (tmp_path / "00000" / "000000000.png").unlink()  # listed as downloaded, file gone: recorded, not dropped
    assert source.read_img2dataset(tmp_path)["status"].tolist() == ["missing_file", "failed_to_download"]
    with pytest.raises(source.SourceError, match="no img2dataset shard tables"):
        source.read_img2dataset(tmp_path / "00000")


def test_img2dataset_command_limits(tmp_path):
    cmd = source.img2dataset_command({"image_size": 384, "max_image_area": 1000000}, "urls.parquet", "out")
    args = dict(zip(cmd[1::2], cmd[2::2], strict=False))
    assert cmd[0] == "img2dataset" and args["--image_size"] == "384" and args["--max_image_area"] == "1000000"
    assert args["--output_format"] == "files" and json.loads(args["--save_additional_columns"])[0] == "NSFW"
    pd.DataFrame({"URL": [f"u{i}" for i in range(50)]}).to_parquet(tmp_path / "meta.parquet")
    assert source.limit_metadata(tmp_path / "meta.parquet", tmp_path / "lim.parquet", 10, seed=0) == 10
    lim = pd.read_parquet(tmp_path / "lim.parquet")["URL"].tolist()
    assert len(set(lim)) == 10 and lim == sorted(lim, key=lambda u: int(u[1:]))  # original order kept


def _bomb_png() -> bytes:
    """A 6000 x 6000 PNG of a few KB: decoding it would need 108 MB; the checks refuse it unread."""
    import io

    buf = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buf, format="PNG")
    return buf.getvalue()


def test_checks_record_every_reason(tmp_path):
    base = _shape(7)
    near = base.copy()
    near[0, 0] = 0  # one pixel off: same perceptual hash
    good = _png(tmp_path / "good.png", base).read_bytes()
    rows = [("tench one", base, {"punsafe": 0.1, "pwatermark": 0.1}),
            ("tench two", near, {"punsafe": 0.1, "pwatermark": 0.1}),            # near duplicate of the first
            ("tench small", _shape(2, 8), {"punsafe": 0.1, "pwatermark": 0.1}),  # too small
            ("tench wide", _shape(3, 32, 128), {"punsafe": 0.1, "pwatermark": 0.1}),  # aspect 4
            ("tench truncated", good[: len(good) // 3], {"punsafe": 0.1, "pwatermark": 0.1}),
            ("tench garbage", b"not an image at all", {"punsafe": 0.1, "pwatermark": 0.1}),
            ("tench bomb", _bomb_png(), {"punsafe": 0.1, "pwatermark": 0.1}),
            ("tench unsafe", _shape(4), {"punsafe": 0.97, "pwatermark": 0.1}),
            ("tench watermark", _shape(5), {"punsafe": 0.1, "pwatermark": 0.95}),
            ("tench leaked", _shape(6), {"punsafe": 0.1, "pwatermark": 0.1})]
    folder = tmp_path / "src"
    _img2dataset(folder, rows)
    ev = tmp_path / "eval"
    _png(ev / "e0.png", _shape(6))
    evm = pd.DataFrame({"item_id": ["e0"], "path": ["e0.png"]})
    cands = lemmas.match_captions(source.read_img2dataset(folder), CLASSES)
    spec = {"min_size": 16, "max_aspect": 3.0, "max_pixels": 10_000_000, "zero_shot": {"enabled": False},
            "near_duplicates": {"max_distance": 4}}
    res = screen.run_checks(cands, folder, CLASSES, None, spec, [("val", evm, ev)])
    flags = dict(zip(res["caption"], res["flags"], strict=True))
    assert flags == {"tench one": "", "tench two": "dup_within", "tench small": "min_size", "tench wide": "aspect",
                     "tench truncated": "decode", "tench garbage": "decode", "tench bomb": "decode",
                     "tench unsafe": "nsfw", "tench watermark": "watermark", "tench leaked": "dup_eval"}
    reason = dict(zip(res["caption"], res["decode_reason"], strict=True))
    assert "exceeds the decode cap" in reason["tench bomb"] and "cannot decode" in reason["tench garbage"]
    assert res.loc[res["caption"] == "tench two", "dup_within_reason"].item() == "near duplicate of 000000000"
    assert res.loc[res["caption"] == "tench leaked", "dup_eval_reason"].item() == \
        "near duplicate of evaluation image val:e0"
    assert res["auto_pass"].tolist() == [f == "" for f in res["flags"]]


def test_near_duplicates_equal_a_full_scan():
    """Multi-index hashing finds exactly what comparing every pair finds: the earliest earlier hash within d bits
    (and the earliest reference hash), including exact copies and hashes at exactly d bits."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64)
    flips = [np.uint64(sum(1 << int(b) for b in rng.choice(64, int(rng.integers(0, 5)), replace=False)))
             for _ in range(120)]
    copies = np.array([base[int(rng.integers(300))] ^ f for f in flips], dtype=np.uint64)
    h = np.concatenate([base, copies])[rng.permutation(420)]
    d = 3
    dist = np.bitwise_count(h[:, None] ^ h[None, :])
    want = [next((i for i in range(j) if dist[i, j] <= d), -1) for j in range(len(h))]
    got = screen.near_duplicates(h, d)
    assert got.tolist() == want and (got >= 0).sum() > 50
    ref, query = h[:200], h[200:]
    dist = np.bitwise_count(ref[:, None] ^ query[None, :])
    want = [int(np.flatnonzero(dist[:, j] <= d)[0]) if (dist[:, j] <= d).any() else -1 for j in range(len(query))]
    assert screen.near_duplicates(query, d, ref).tolist() == want
    assert screen.near_duplicates(np.zeros(0, np.uint64), d).tolist() == []


def test_text_filter_is_clip_cosine():
    """Similarity = cosine of the open_clip text embeddings of caption and "{name} which is {definition}"."""
    import open_clip
    import torch

    from genbench.features.clip_train import register_model_config
    from genbench.features.text_image import OpenCLIPEmbedder

    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8,
                                           "head_width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    register_model_config("genbench-test-clip", cfg)
    torch.manual_seed(0)
    model, _, pre = open_clip.create_model_and_transforms("genbench-test-clip")
    emb = OpenCLIPEmbedder("t", model, pre, open_clip.get_tokenizer("genbench-test-clip"))
    classes = miniworld_classes(["circle", "square", "star"])
    df = lemmas.match_captions(pd.DataFrame({"caption": ["a red star", "square tile", "abstract"]}), classes)
    out = screen.text_filter(df, classes, emb, threshold=0.0)
    tok = open_clip.get_tokenizer("genbench-test-clip")
    with torch.no_grad():
        a = model.encode_text(tok(["a red star"])).double()
        b = model.encode_text(tok([f"star which is {classes.loc[2, 'definition']}"])).double()
    want = torch.nn.functional.cosine_similarity(a, b).item()
    # the embeddings are float32 (batched vs single-caption encoding and the CPU's kernels round differently), so
    # the cosine agrees to float32 precision: a few ulps of 2**-24 ~ 6e-8, not 1e-9 (1.7e-8 was seen on AVX-512)
    assert out.loc[0, "text_similarity"] == pytest.approx(want, abs=1e-6)
    assert np.isnan(out.loc[2, "text_similarity"]) and not out.loc[2, "text_pass"]
    thr = out.loc[:1, "text_similarity"].mean()
    passed = screen.text_filter(df, classes, emb, threshold=thr)["text_pass"].tolist()
    assert passed[:2] == [s >= thr for s in out.loc[:1, "text_similarity"]]


def test_decision_log_resumes_and_tolerates_a_torn_line(tmp_path):
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path, "alice")
    log.record("a", "accept")
    log.record("b", "reject")
    log.record("a", "reject")  # changed her mind: the last line wins
    with open(path, "a") as f:
        f.write('{"item_id": "c", "deci')  # killed mid-write
    assert read_decisions(path) == {"a": "reject", "b": "reject"}
    assert DecisionLog(path, "alice").decisions == {"a": "reject", "b": "reject"}
    path.write_text('{"item_id": "a", "decision": "maybe"}\n')
    with pytest.raises(DecisionError, match="d.jsonl:1"):
        read_decisions(path)


def test_agreement_matches_sklearn():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(1)
    items = [f"i{k}" for k in range(60)]
    a = {i: ("accept" if rng.uniform() < 0.7 else "reject") for i in items}
    b = {i: (v if rng.uniform() < 0.8 else ("reject" if v == "accept" else "accept")) for i, v in a.items()}
    b["i0"] = "skip"
    t = agreement({"a": a, "b": b})
    common = items[1:]
    assert t.loc[0, "n_common"] == 59
    assert t.loc[0, "cohen_kappa"] == pytest.approx(cohen_kappa_score([a[i] for i in common],
                                                                      [b[i] for i in common]), abs=1e-12)


def _text_and_checks():
    text = pd.DataFrame({
        "item_id": list("abcdefgh"), "status": ["success"] * 7 + ["failed_to_download"],
        "error_message": [None] * 7 + ["404"], "path": [f"{k}.png" for k in "abcdefg"] + [""],
        "match": ["single"] * 5 + ["none", "multiple", "single"], "matched_lemmas": [""] * 6 + ["x; y", ""],
        "label_id": [0, 1, 2, 3, 0, -1, -1, 1], "text_similarity": [0.9, 0.9, 0.9, 0.9, 0.5, np.nan, np.nan, 0.9],
        "text_pass": [True, True, True, True, False, False, False, True], "caption": list("abcdefgh")})
    checks = pd.DataFrame({"item_id": list("abcd")})
    for c in screen.CHECKS:
        checks[f"{c}_ok"] = True
        checks[f"{c}_reason"] = ""
    checks.loc[2, ["zero_shot_ok", "zero_shot_reason"]] = [False, "rank 3"]
    checks.loc[3, ["dup_eval_ok", "dup_eval_reason"]] = [False, "near duplicate of evaluation image v:1"]
    return text, checks


def test_final_status_policy_and_overrides():
    text, checks = _text_and_checks()
    dec = {"r1": {"a": "accept", "b": "reject", "c": "accept", "d": "accept"}}
    st = finalize.final_status(text, checks, dec, {"policy": "exclude"}).set_index("item_id")
    assert st["reason"].to_dict() == {"a": "accepted", "b": "reviewer_reject", "c": "accepted", "d": "dup_eval",
                                      "e": "text_similarity", "f": "no_lemma", "g": "multiple_synsets",
                                      "h": "download"}
    assert st["accepted"].sum() == 2  # c: zero-shot overruled by the reviewer; d: duplicates cannot be
    st = finalize.final_status(text, checks, {"r1": {}}, {"policy": "accept_if_checks_pass"}).set_index("item_id")
    assert st.loc[["a", "b", "c"], "reason"].tolist() == ["accepted_by_policy", "accepted_by_policy", "zero_shot"]
    st = finalize.final_status(text, checks, {"r1": {}}, {"policy": "exclude"}).set_index("item_id")
    assert st.loc["a", "reason"] == "undecided_excluded"
    two = {"r1": {"a": "accept", "b": "accept"}, "r2": {"a": "reject", "b": "skip"}}
    st = finalize.final_status(text, checks, two, {"policy": "exclude", "combine": "all"}).set_index("item_id")
    assert st.loc[["a", "b"], "reason"].tolist() == ["reviewer_reject", "accepted"]
    reasons = finalize.reasons_table(st.reset_index())
    assert reasons["items"].sum() == 8 and reasons["reason"].iloc[0] == "download"


def test_final_stage_without_accepted_items_says_what_to_do(tmp_path):
    """A curated set nobody reviewed, under policy exclude, fails with the review command named (not with an
    empty manifest)."""
    from genbench.curate.stages import stage_final

    text, checks = _text_and_checks()
    text.to_parquet(tmp_path / "text.parquet")
    checks.to_parquet(tmp_path / "checks.parquet")
    config = {"seed": 0, "miniworld": {"classes": ["circle", "square", "triangle", "star"]},
              "datasets": {"cur": {"adapter": "curated", "classes": "miniworld", "source": {"kind": "img2dataset"},
                                   "review": {"policy": "exclude"}}}}
    with pytest.raises(ValueError, match=r"no candidate is accepted.*genbench review results/curate/cur"):
        stage_final("cur", config, tmp_path / "text.parquet", tmp_path / "checks.parquet", [], tmp_path,
                    tmp_path / "out" / "manifest.parquet", tmp_path / "status.parquet")
    assert not (tmp_path / "out" / "manifest.parquet").exists()

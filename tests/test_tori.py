""".tori parameter files: type checks, unknown keys, mapping to the config model, merge order, provenance."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import h5py
import pytest

from tomosnake import config
from tomosnake.io import tori
from tomosnake.config import ReconConfig

DATA = Path(__file__).parent / "data"
FULL, MINIMAL, FRESH = DATA / "full.tori", DATA / "minimal.tori", DATA / "gui_fresh.tori"
UNKNOWN, FILTER_PAR = DATA / "unknown_keys.tori", DATA / "filter_par.tori"
RAW_DIR = "/data/visitors/danmax/20240123/2024041208/raw/bone_0042"


def attr(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


# Every key of full.tori (written by hand in the GUI's layout) and where it must land; written
# independently of the module's mapping code.
FULL_EXPECTED = [
    ("input", [f"{RAW_DIR}/scan-0042.h5"]),                       # file_definitions/data_file
    ("datasets.data_path", "entry/instrument/pco/data"),
    ("datasets.dark_file", f"{RAW_DIR}/darks-0041.h5"),
    ("datasets.dark_path", "entry/instrument/pco/dark"),
    ("datasets.flat_file", None),                                 # same file as the data: read from it
    ("datasets.flat_path", "exchange/flats"),
    ("datasets.slice_proj", (0, -1, 2)),
    ("datasets.slice_ver", (10, 90, 1)),
    ("datasets.slice_hor", (4, -1, 1)),
    ("datasets.theta_source", "calc"),
    ("datasets.theta_start", -5.0),
    ("datasets.theta_end", 355.5),
    ("preprocess.flat_dark.normalize_dark", True),
    ("preprocess.flat_dark.normalize_flat", True),
    ("preprocess.i0.enabled", True),                              # normalize_i0
    ("preprocess.i0.source", "monitor"),                          # the GUI divides by the beam monitor
    ("preprocess.normalize_to_unity.enabled", True),
    ("preprocess.flatten.enabled", True),
    ("preprocess.flatten.size", 32),
    ("preprocess.crop.enabled", True),
    ("preprocess.crop.ranges", (2, 60, 8, 120)),
    ("preprocess.outlier.enabled", True),
    ("preprocess.outlier.dif", 0.25),
    ("preprocess.outlier.size", 5),                               # 5.0 in the file: any JSON number
    ("preprocess.stripe.enabled", True),
    # TomoPy's Titarenko method: algotom's implementation of it; TomoPy's damping factor alpha has no counterpart
    ("preprocess.stripe.function", "remove_stripe_based_regularization"),
    ("preprocess.stripe.kwargs", {"num_chunk": 1, "apply_log": False, "sort": False}),  # nblock 0: one block
    ("preprocess.phase.enabled", True),
    ("preprocess.phase.pixel_size", 0.000325),
    ("preprocess.phase.dist", 12.5),
    ("preprocess.phase.energy", 35.0),
    ("preprocess.phase.alpha", 0.0005),
    ("preprocess.phase.pad", False),
    ("preprocess.minus_log_before_phase", False),
    ("preprocess.minus_log_after_phase", True),
    ("recon.minus_log", False),                                   # no -log beyond the two flags
    ("recon.center", 1021.75),
    ("recon.algorithm", "fbp"),
    ("recon.filter_name", "shepp"),
    ("recon.pad.enabled", False),
    ("recon.pad.npad", 128),
    ("recon.pad.mode", "constant"),
    ("recon.sino_360_to_180.enabled", True),
    ("recon.sino_360_to_180.old_center", 1900.5),
    ("recon.excluded_proj", [(100, 120), (300, 305)]),
    ("recon.circ_mask.enabled", True),
    ("recon.circ_mask.ratio", 0.9),
    ("recon.circ_mask.val", -1.5),
    ("recon.ring_removal.enabled", True),
    ("recon.ring_removal.thresh", 250.0),
    ("recon.ring_removal.theta_min", 30.0),
    ("recon.ring_removal.rwidth", 17),
    ("recon.convert.enabled", True),
    ("recon.convert.min", -0.002),
    ("recon.convert.max", 0.01),
    ("recon.convert.dtype", "uint16"),
    ("recon.convert.mode", "manual"),
    ("output.pyramid", [2, 4]),                                   # downscale + down_scale_factors
]


@pytest.fixture(scope="module")
def full_cfg() -> config.TomoConfig:
    return config.load({"tori": str(FULL)})


@pytest.mark.parametrize(("key", "expected"), FULL_EXPECTED, ids=[k for k, _ in FULL_EXPECTED])
def test_full_tori_maps_key_by_key(full_cfg, key: str, expected: Any) -> None:
    assert attr(full_cfg, key) == expected


def test_every_tori_key_is_covered() -> None:
    """full.tori holds every key of the GUI's fresh tori (so the table above covers each section)."""
    def paths(d: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out |= paths(v, f"{prefix}{k}/") if isinstance(v, dict) and k != "stripe_removal_kwargs" else {prefix + k}
        return out
    full = json.loads(FULL.read_text())
    assert paths(json.loads(FRESH.read_text())) == paths(full)
    assert paths(tori.DEFAULTS) == paths(full)


def test_defaults_are_the_guis_fresh_tori() -> None:
    assert tori.read(FRESH) == tori.DEFAULTS
    assert tori.complete({}) == tori.DEFAULTS


def test_minimal_tori_takes_gui_defaults() -> None:
    cfg = config.load({"tori": str(MINIMAL)})
    assert cfg.input == ["/data/raw/scan_7.h5"]
    assert cfg.recon.center == 320.5
    assert cfg.preprocess.flat_dark.normalize_dark and cfg.preprocess.flat_dark.normalize_flat
    assert cfg.preprocess.minus_log_before_phase and not cfg.preprocess.minus_log_after_phase
    # Missing keys: the GUI's defaults, which differ from the model's own in these places.
    assert cfg.recon.filter_name == "parzen"                      # model: shepp
    assert cfg.recon.convert.dtype == "float16"                   # model: float32
    assert cfg.recon.minus_log is False                           # model: auto
    assert cfg.preprocess.i0.source == "monitor"                  # model: auto
    # ... and the GUI's defaults elsewhere.
    # GUI default string 'all_stripe' (remove_all_stripe): the pipeline's profile method, kwargs dropped
    assert cfg.preprocess.stripe.function == "profile" and cfg.preprocess.stripe.kwargs == {}
    assert not cfg.preprocess.i0.enabled and not cfg.preprocess.phase.enabled
    assert (cfg.preprocess.phase.pixel_size, cfg.preprocess.phase.dist) == (0.00055, 28.0)
    assert cfg.recon.pad.enabled and cfg.recon.pad.npad == "auto"
    assert cfg.datasets.slice_proj == (0, -1, 1) and cfg.datasets.theta_source == "exchange"
    assert cfg.datasets.dark_file is None and cfg.datasets.flat_file is None
    assert cfg.output.pyramid == []
    assert cfg.preprocess.flatten.size == 64                      # GUI null: not set, model default kept


def test_a_gui_default_tori_without_data_file_leaves_input_alone() -> None:
    assert "input" not in tori.to_config(tori.read(FRESH))
    assert config.load({"tori": str(FRESH), "input": ["a.h5"]}).input == ["a.h5"]


def test_explicit_config_overrides_tori() -> None:
    cfg = config.load({"tori": str(FULL), "input": ["/other/scan.h5"], "recon": {"center": 1000.0},
                       "preprocess": {"phase": {"alpha": 0.01}}, "memory_mb": 500})
    assert cfg.input == ["/other/scan.h5"]
    assert cfg.recon.center == 1000.0
    assert cfg.preprocess.phase.alpha == 0.01
    assert cfg.preprocess.phase.energy == 35.0                    # the rest of the section still from the .tori
    assert cfg.recon.filter_name == "shepp"
    assert cfg.memory_mb == 500
    assert cfg.preprocess.background.enabled is False             # not in a .tori: the model default


def test_config_load_rejects_a_broken_tori(tmp_path) -> None:
    bad = tmp_path / "bad.tori"
    bad.write_text('{"correction_arguments": {"normalize_flat": "yes"}}')
    with pytest.raises(tori.ToriError, match="normalize_flat"):
        config.load({"tori": str(bad)})


def write_variant(tmp_path: Path, keys: tuple[str, ...], value: Any) -> Path:
    data = json.loads(FULL.read_text())
    node = data
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    path = tmp_path / "variant.tori"
    path.write_text(json.dumps(data))
    return path


WRONG_TYPES = [
    (("file_definitions", "data_path"), 3, "must be a string"),
    (("file_definitions", "slice_proj"), [0, -1], "must be a list of 3 integers"),
    (("file_definitions", "slice_ver"), [0, "end", 1], "must be a list of 3 integers"),
    (("file_definitions", "theta_source"), "file", "must be one of exchange, calc"),
    (("file_definitions", "theta_end"), "180", "must be a number"),
    (("correction_arguments", "normalize_dark"), 1, "must be true or false"),
    (("correction_arguments", "flatten_images_kwargs", "flatten_size"), 2.5, "must be an integer"),
    (("correction_arguments", "crop_kwargs", "crop_ranges"), [0, 10], "must be a list of 4 integers"),
    (("correction_arguments", "outlier_removal_kwargs", "size"), "three", "must be an integer"),
    (("correction_arguments", "stripe_removal_kwargs"), {"snr": [3]}, "must be an object"),
    (("correction_arguments", "phase_retrieval_kwargs", "energy"), None, "must be a number"),
    (("correction_arguments", "phase_retrieval_kwargs", "pad"), "true", "must be true or false"),
    (("reconstruction_arguments", "recon_kwargs", "center"), "1021", "must be a number"),
    (("reconstruction_arguments", "recon_kwargs", "filter_par"), [0.5, "x"], "must be a list of numbers"),
    (("reconstruction_arguments", "pad_kwargs", "npad"), "half", "must be 'auto' or an integer"),
    (("reconstruction_arguments", "excluded_proj"), [[1, 2, 3]], "must be a list of [from, to]"),
    (("reconstruction_arguments", "sino_360_to_180_old_center"), True, "must be a number"),
    (("post_recon_process_arguments", "circ_mask_kwargs"), [0.9, 0], "must be a JSON object"),
    (("post_recon_process_arguments", "convert_kwargs", "mode"), "median", "must be one of std, minmax, manual"),
    (("post_recon_process_arguments", "downscale_kwargs", "down_scale_factors"), 2, "non-empty list of integers"),
]


@pytest.mark.parametrize(("keys", "value", "phrase"), WRONG_TYPES, ids=["/".join(k) for k, _, _ in WRONG_TYPES])
def test_wrong_type_rejected_naming_file_and_key(tmp_path, keys: tuple[str, ...], value: Any, phrase: str) -> None:
    path = write_variant(tmp_path, keys, value)
    with pytest.raises(tori.ToriError) as err:
        tori.read(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    assert f"'{'/'.join(keys)}'" in message
    assert phrase in message


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(tori.ToriError, match="not found"):
        tori.read(tmp_path / "missing.tori")
    broken = tmp_path / "broken.tori"
    broken.write_text('{"file_definitions": {"data_file": "a.h5",}}')
    with pytest.raises(tori.ToriError, match=r"broken.tori: not valid JSON .* line 1"):
        tori.read(broken)
    listed = tmp_path / "list.tori"
    listed.write_text("[1, 2]")
    with pytest.raises(tori.ToriError, match="top level must be a JSON object"):
        tori.read(listed)


def test_unsupported_axis_rejected(tmp_path) -> None:
    path = write_variant(tmp_path, ("correction_arguments", "outlier_removal_kwargs", "axis"), 1)
    with pytest.raises(tori.ToriError, match=r"variant.tori: .*outlier_removal_kwargs/axis' must be 0, the only"):
        config.load({"tori": str(path)})


def test_unknown_keys_reported_never_used() -> None:
    expected = ["gui_version", "file_definitions/sample_name", "correction_arguments/normalize_beam",
                "reconstruction_arguments/recon_kwargs/num_iter",
                "post_recon_process_arguments/ring_removal_kwargs/int_mode", "laminography_arguments"]
    with pytest.warns(tori.ToriWarning) as caught:
        parsed = tori.read(UNKNOWN)
    message = str(caught[0].message)
    assert str(UNKNOWN) in message and all(key in message for key in expected)
    assert tori.unknown_keys(UNKNOWN) == expected
    mapped = json.dumps(tori.to_config(parsed))
    for word in ("sample_name", "eggshell", "normalize_beam", "num_iter", "int_mode", "WRAP", "tilt", "2.3.1"):
        assert word not in mapped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tori.ToriWarning)
        cfg = config.load({"tori": str(UNKNOWN)})
    assert cfg.recon.center == 100.0 and cfg.preprocess.flat_dark.normalize_flat


def test_known_files_raise_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in (FULL, MINIMAL, FRESH, FILTER_PAR):
            tori.read(path)


@pytest.mark.skipif("filter_par" not in ReconConfig.model_fields,
                    reason="needs ReconConfig.filter_par (config diff proposed in the issue-8 report)")
def test_filter_par_reaches_config() -> None:
    cfg = config.load({"tori": str(FILTER_PAR)})
    assert cfg.recon.filter_name == "butterworth"
    assert cfg.recon.filter_par == [0.4, 2.0]


def test_filter_par_mapped() -> None:
    assert tori.to_config(tori.read(FILTER_PAR))["recon"]["filter_par"] == [0.4, 2]
    assert "filter_par" not in tori.to_config(tori.read(FULL))["recon"]


def test_provenance_flattened_and_writable(tmp_path) -> None:
    flat = tori.provenance(tori.complete(tori.read(MINIMAL)))
    assert flat["reconstruction_arguments/recon_kwargs/center"] == 320.5
    assert flat["correction_arguments/stripe_removal_kwargs/la_size"] == 61
    assert flat["file_definitions/slice_proj"] == [0, -1, 1]
    assert "post_recon_process_arguments/ring_removal_kwargs/thresh" not in flat  # None skipped
    assert "reconstruction_arguments/sino_360_to_180_old_center" not in flat
    full = tori.provenance(tori.complete(tori.read(FULL)))
    assert full["reconstruction_arguments/excluded_proj"] == [[100, 120], [300, 305]]
    out = tmp_path / "recon.h5"
    with h5py.File(out, "w") as f:
        for key, val in full.items():
            f.create_dataset(f"tori/{key}", data=val)
    with h5py.File(out, "r") as f:
        assert f["tori/reconstruction_arguments/recon_kwargs/center"][()] == 1021.75
        assert f["tori/file_definitions/data_path"][()].decode() == "entry/instrument/pco/data"
        assert f["tori/post_recon_process_arguments/convert"][()]
        assert f["tori/reconstruction_arguments/excluded_proj"].shape == (2, 2)
        names: list[str] = []
        f["tori"].visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    assert sorted(names) == sorted(full)


def test_from_config_round_trip(full_cfg) -> None:
    data_file = full_cfg.input[0]
    back = tori.from_config(full_cfg, data_file=data_file)
    assert tori.unknown_keys(back) == []
    again = config.validate(tori.to_config(back))
    assert again.model_dump(exclude={"tori"}) == full_cfg.model_dump(exclude={"tori"})
    # The beamline layout carries the values a run used, e.g. an explicit centre.
    used = full_cfg.model_copy(update={"recon": full_cfg.recon.model_copy(update={"center": 1017.25})})
    assert tori.from_config(used, data_file)["reconstruction_arguments"]["recon_kwargs"]["center"] == 1017.25


def test_to_config_does_not_mutate_input() -> None:
    parsed = tori.read(FULL)
    before = copy.deepcopy(parsed)
    tori.to_config(parsed)
    assert parsed == before


@pytest.mark.parametrize("name", ["all_stripe", "remove_all_stripe"])
def test_remove_all_stripe_maps_to_the_profile_method(name: str) -> None:
    """The GUI's default stripe function harms and is slow: it maps to 'profile', its kwargs dropped;
    other names keep algotom's function and the file's kwargs."""
    ca = {"stripe_removal": True, "stripe_function": name, "stripe_removal_kwargs": {"snr": 3, "la_size": 61}}
    cfg = config.load(tori.to_config({"correction_arguments": ca}))
    assert cfg.preprocess.stripe.enabled and cfg.preprocess.stripe.function == "profile"
    assert cfg.preprocess.stripe.kwargs == {}
    ca |= {"stripe_function": "remove_stripe_based_sorting", "stripe_removal_kwargs": {"size": 11}}
    other = config.load(tori.to_config({"correction_arguments": ca}))
    assert (other.preprocess.stripe.function, other.preprocess.stripe.kwargs) == ("remove_stripe_based_sorting",
                                                                                   {"size": 11})

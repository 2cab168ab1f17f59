"""The config model: defaults, named errors, merge order, scan names."""

import pytest

from tomosnake.outdir import OutdirError, check_carriable
from tomosnake.config import (
    ConfigError,
    TomoConfig,
    deep_merge,
    scan_name,
    stage_dict,
    validate,
)


def test_defaults_validate():
    cfg = validate({})
    assert cfg.recon.backend == "gridrec"
    assert cfg.preprocess.flat_dark.normalize_flat is True


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"memroy_mb": 10}, "memroy_mb"),
        ({"preprocess": {"outlier": {"dif": -1}}}, "preprocess.outlier.dif"),
        ({"recon": {"circ_mask": {"ratio": 1.5}}}, "recon.circ_mask.ratio"),
        ({"recon": {"backend": "astra"}}, "recon.backend"),
        ({"recon": {"convert": {"enabled": True, "mode": "manual"}}}, "recon.convert"),
        ({"datasets": {"slice_proj": [0, -1, 0]}}, "datasets.slice_proj"),
        ({"output": {"pyramid": [4, 2]}}, "output.pyramid"),
        ({"memory_mb": "lots"}, "memory_mb"),
    ],
)
def test_bad_values_name_the_key(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(raw)


def test_unknown_key_is_reported_as_unknown():
    with pytest.raises(ConfigError, match="'recon.filtre': unknown key"):
        validate({"recon": {"filtre": "shepp"}})


def test_input_accepts_comma_separated_string():
    assert validate({"input": "a.h5, b c.h5"}).input == ["a.h5", "b c.h5"]


def test_deep_merge_later_wins_and_keeps_siblings():
    merged = deep_merge({"recon": {"center": 1, "backend": "gridrec"}}, {"recon": {"center": 2}})
    assert merged == {"recon": {"center": 2, "backend": "gridrec"}}


@pytest.mark.parametrize(
    ("path", "name"),
    [("/data/scan_001.h5", "scan_001"), ("/x/my scan; rm -rf ~.h5", "my_scan_rm_-rf"), ("a/$(id).hdf5", "id")],
)
def test_scan_names_are_shell_safe(path, name):
    assert scan_name(path) == name


def test_recon_parameters_do_not_change_the_plan_params():
    """A new filter or a new configured centre reruns the reconstruction, not the plan and preprocessing."""
    a, b = TomoConfig(), TomoConfig()
    a.recon.center = 10.0
    b.recon.filter_name = "shepp"
    b.recon.center = 12.0
    assert stage_dict(a, "plan") == stage_dict(b, "plan")
    assert stage_dict(a, "recon") != stage_dict(b, "recon")


@pytest.mark.parametrize("name", ["o $(x)", "o `x`", "it's", 'a "q"', "back\\slash", "{scan}", "new\nline", "tab\t"])
def test_outdir_no_executor_can_carry_is_refused(name):
    with pytest.raises(OutdirError, match="config key 'outdir'"):
        check_carriable(f"/data/{name}/out")


@pytest.mark.parametrize("name", ["a b", "x; y", "-lead", "ü", "a,b", "a&b|c"])
def test_outdir_with_other_characters_is_accepted(name):
    check_carriable(f"/data/{name}/out")

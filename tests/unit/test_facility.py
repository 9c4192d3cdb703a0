import pytest

from afbox.errors import ConfigError
from afbox.facility import key_line, load, parse_size, profiles


def test_profiles_have_descriptions():
    p = profiles()
    assert {"laptop", "workstation", "ci"} <= set(p)
    assert all(p[k] for k in ("laptop", "workstation", "ci"))


def test_user_file_and_flags_merge_over_profile(tmp_path):
    cfg = tmp_path / "a.toml"
    cfg.write_text('[dask]\nworkers = 5\n[xcache]\norigin = "root://data.example:1094"\n')
    fac = load("ci", cfg, {"dask": {"workers": 3}})
    assert fac.dask.workers == 3                       # flag beats file
    assert fac.xcache.origin == "root://data.example:1094"  # file beats profile
    assert fac.dask.memory_limit == "1GiB"             # profile kept
    assert fac.facility.port_base == 18780 and fac.name == "ci"


@pytest.mark.parametrize("text,expected", [("512MiB", 512 * 1024 ** 2), ("4G", 4 * 1024 ** 3), ("100", 100),
                                           ("1.5GiB", int(1.5 * 1024 ** 3))])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_rejects_garbage():
    with pytest.raises(ValueError):
        parse_size("lots")


def test_key_line_finds_nested_and_dotted_keys():
    text = '# c\n[facility]\nname = "x"\n\n[dask]\nworkers = 2\nextra_args = ["a"]\n[xcache]\nsize = "1G"\n'
    assert key_line(text, ("dask", "workers")) == 6
    assert key_line(text, ("dask", "extra_args", 0)) == 7
    assert key_line(text, ("xcache", "size")) == 9
    assert key_line(text, ("facility",)) == 2
    assert key_line('dask.workers = 3\n', ("dask", "workers")) == 1


def test_error_for_flag_names_flags():
    with pytest.raises(ConfigError) as e:
        load("ci", None, {"facility": {"port_base": 80}})
    assert e.value.message.startswith("command-line flags: facility.port_base")


def test_several_errors_are_all_reported(tmp_path):
    cfg = tmp_path / "a.toml"
    cfg.write_text('[dask]\nworkers = -1\nmemory_limit = "lots"\n')
    with pytest.raises(ConfigError) as e:
        load("ci", cfg)
    text = e.value.render()
    assert f"{cfg}:2: dask.workers" in text and f"{cfg}:3: dask.memory_limit" in text


def test_auth_settings_are_checked(tmp_path):
    cfg = tmp_path / "a.toml"
    cfg.write_text('[auth]\ntrusted_issuers = ["http://plain.example"]\ntoken_lifetime = "soon"\n')
    with pytest.raises(ConfigError) as e:
        load("ci", cfg)
    text = e.value.render()
    assert f"{cfg}:2: auth.trusted_issuers: a trusted issuer must be an https:// URL" in text
    assert f"{cfg}:3: auth.token_lifetime: not a duration" in text


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        load("ci", tmp_path / "nope.toml")
    assert "cannot read" in e.value.message


def test_a_container_runtime_is_refused_on_k3s():
    with pytest.raises(ConfigError, match="k3s runs every service in its image already"):
        load("laptop", None, {"facility": {"backend": "k3s"}, "runtime": {"kind": "apptainer", "image": "x.sif"}})

"""The search's settings are declared once (`search.settings.SETTINGS`): TicketSearch's
signature and docstring, the presets and the CLI's flags all agree with that list."""

import inspect

import pytest

import keras_lottery as kl
from keras_lottery import cli, presets
from keras_lottery.search import settings

NOT_SETTINGS = {"self", "model", "x", "y", "validation_data", "test_data", "fit_kwargs"}


def test_ticket_search_signature_is_the_declaration():
    parameters = [p for p in inspect.signature(kl.TicketSearch.__init__).parameters.values()
                  if p.name not in NOT_SETTINGS]
    assert [p.name for p in parameters] == [s.name for s in settings.SETTINGS]
    for parameter in parameters:
        assert parameter.kind is parameter.KEYWORD_ONLY, parameter.name
        assert parameter.default == settings.BY_NAME[parameter.name].default, parameter.name


def test_every_setting_is_documented():
    doc = kl.TicketSearch.__doc__
    missing = [s.name for s in settings.SETTINGS if f"        {s.name}:" not in doc]
    assert not missing


def test_cli_flags_come_from_the_declaration():
    run = cli.parser()._subparsers._group_actions[0].choices["run"]
    flags = {action.dest: action for action in run._actions}
    for setting in (*settings.FLAGGED, *(s for s in presets.TRAINING_SETTINGS if s.flag)):
        assert setting.name in flags, setting.name
        assert flags[setting.name].help == setting.help
    # Parsed, then refused by the setting's own check, naming it.
    assert cli.parser().parse_args(["run", "--rounds", "3"]).rounds == 3
    assert cli.parser().parse_args(["run", "--rounds", "3"]).one_shot is None


@pytest.mark.parametrize("argv, message", [
    (["--rounds", "0"], "Expected `rounds` an integer >= 1"),
    (["--target-density", "1.5"], "Expected `target_density` in (0, 1)"),
    (["--eval-every", "x"], "expected an integer"),
    (["--learning-rate", "-1"], "Expected `learning_rate` > 0"),
    (["--dropout", "nan"], "expected a finite number"),
    (["--structure", "rows"], "Expected `structure` one of"),
    (["--monitor", "loss"], "Expected `monitor` to name a validation quantity"),
])
def test_cli_refuses_with_the_settings_message(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["run", *argv])
    assert message in capsys.readouterr().err


def test_one_rule_for_what_is_given():
    rounds = settings.BY_NAME["rounds"]
    assert not rounds.given(None) and rounds.given(3)
    criterion = settings.BY_NAME["criterion"]
    assert not criterion.given("large_final") and not criterion.given(kl.Criterion())
    assert criterion.given("movement")
    assert not settings.BY_NAME["prune_rates"].given(kl.PruneRates(0.2, by_kind={"output": 0.1}))
    assert settings.BY_NAME["prune_rates"].given(0.2)
    assert not settings.BY_NAME["structure"].given(None)
    assert settings.BY_NAME["structure"].given("filters")


@pytest.mark.parametrize("values, message", [
    (dict(one_shot=[0.5], rounds=3), "Expected `one_shot` or `rounds`, not both"),
    (dict(one_shot=[0.5], target_density=0.2), "`one_shot` or `target_density`"),
    (dict(transfer=[{"a": 1}], rounds=3), "`transfer` alone"),
    (dict(transfer=[{"a": 1}], structure="neurons"), "`transfer` alone"),
    (dict(criterion="snip"), "Expected `one_shot` densities with criterion 'snip'"),
    (dict(structure="filters", budget="erk"), "budget='uniform' with a structure"),
    (dict(bogus=1), "Expected search settings among"),
])
def test_what_excludes_what(values, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings.check_settings(values)


def test_presets_take_the_search_settings_and_check_them():
    assert presets.get("vgg19_cifar10").budget == "global"
    assert presets.get("lenet_300_100_mnist", budget="erk").budget == "erk"
    with pytest.raises(ValueError, match="Expected `budget` among"):
        presets.get("lenet_300_100_mnist", budget="everything")
    with pytest.raises(ValueError, match="Expected `rounds` an integer >= 1"):
        presets.get("lenet_300_100_mnist", rounds=0)


def test_a_preset_search_refuses_settings_that_exclude_each_other_before_data_loads(tmp_path):
    with pytest.raises(ValueError, match="`one_shot` or `rounds`"):
        kl.TicketSearch.from_preset("mlp_mnist1d", one_shot=[0.5], rounds=2,
                                    data_dir=tmp_path / "no data here")

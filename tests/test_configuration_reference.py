"""docs/configuration.md lists every variable of every service, with a meaning, as the settings classes define it."""

from scripts import configref


def test_the_reference_is_what_the_settings_classes_say():
    assert configref.REFERENCE.read_text() == configref.render(), "run `make docs` (python -m scripts.configref)"


def test_every_variable_of_every_service_has_a_type_a_default_and_a_meaning():
    for _title, model, _source in configref.SERVICES:
        prefix = str(model.model_config.get("env_prefix", ""))
        listed = list(configref.variables(model, prefix))
        assert len(listed) >= len(model.model_fields)  # nested roles add theirs (GATEWAY_REPORT_URL, ...)
        missing = [v.name for v in listed if not (v.meaning and v.type and v.default)]
        assert missing == [], f"give these a comment or a description in {model.__name__}: {missing}"
    names = [v.name for _t, model, _s in configref.SERVICES for v in configref.variables(model, model.model_config["env_prefix"])]
    assert len(names) == len(set(names)) and {"GATEWAY_REPORT_MAX_CONCURRENCY", "CXR_BRIDGE_RIS_PORT"} <= set(names)


def test_a_field_without_a_meaning_is_caught():
    from pydantic import BaseModel

    class Undocumented(BaseModel):
        # Documented as a group: both of these.
        first: int = 1
        second: int = 2

        third: int = 3

    meanings = {v.name: v.meaning for v in configref.variables(Undocumented, "X_")}
    group = "Documented as a group: both of these."
    assert meanings == {"X_FIRST": group, "X_SECOND": group, "X_THIRD": ""}

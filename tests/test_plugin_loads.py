"""The plugin must load with no errors: an import error silently drops every operator."""
import fiftyone.operators as foo
import fiftyone.plugins.context as fpc


def test_plugin_has_no_load_errors():
    contexts = [c for c in fpc.build_plugin_contexts() if c.plugin_definition.name == "@iou-audit/iou-audit"]
    assert contexts, "plugin @iou-audit/iou-audit not discovered (FIFTYONE_PLUGINS_DIR?)"
    assert not contexts[0].errors, contexts[0].errors


def test_declared_operators_are_registered():
    import pathlib

    import yaml

    manifest = yaml.safe_load((pathlib.Path(__file__).parents[1] / "fiftyone.yml").read_text())
    uris = {o.uri for o in foo.list_operators(builtin=False)}
    declared = {f"{manifest['name']}/{n}" for n in manifest.get("operators", []) + manifest.get("panels", [])}
    assert declared <= uris, f"declared but not registered: {sorted(declared - uris)}"

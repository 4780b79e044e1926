"""Stand-ins that several test files share."""

from __future__ import annotations


class IdentitySession:
    """Stands in for an ONNX Runtime session: returns its input."""

    class _Input:
        name = "input"

    class _Meta:
        custom_metadata_map: dict = {}

    def get_inputs(self):
        return [self._Input()]

    def get_modelmeta(self):
        return self._Meta()

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def run(self, _outputs, feeds):
        return [feeds["input"]]

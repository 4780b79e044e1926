"""AirNet model package: ``from net import AirNet, load_airnet``."""

from net.model import AirNet, load_airnet

__all__ = ["AirNet", "load_airnet"]

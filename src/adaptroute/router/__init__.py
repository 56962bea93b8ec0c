"""The online router (litellm is imported on the first call, never at import)."""

from .core import Router
from .streaming import AsyncRoutedStream, RoutedStream

__all__ = ["AsyncRoutedStream", "RoutedStream", "Router"]

"""minewatch: find crypto-currency mining sites in satellite, drone and thermal imagery."""

__version__ = "0.1.0"

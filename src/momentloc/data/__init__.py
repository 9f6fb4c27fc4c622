"""Data layer: annotation parsers (``formats``), point labels, statistics, features and datasets."""

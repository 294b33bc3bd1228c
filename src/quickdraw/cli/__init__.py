"""Command-line interface (Typer). Only this package imports typer or rich's console."""

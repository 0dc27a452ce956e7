"""The command-line layer: argv, output and exit codes of every console script. It may
import every package; none imports it.
"""

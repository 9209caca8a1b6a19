import os
import sys

# tests import the reference as `naive` from this folder
sys.path.insert(0, os.path.dirname(__file__))

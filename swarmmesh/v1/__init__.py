"""Generated wire code for swarmmesh.v1 (do not edit; see tools/genproto.py)."""

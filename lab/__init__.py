"""The local lab: test equipment. Product code (kubenorn/, tasks/, runbooks/) never imports it,
except runbooks/lab.py, the lab's own command line."""

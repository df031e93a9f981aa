"""ntkjax's zero-cost proxies against NAS-Bench-Suite-Zero's published
scores of the same NB201 nets (score agreement and τ against accuracy).

    python -m experiments.proxy_agreement --config configs/proxy_agreement.py --workdir /tmp/proxies

The config's docstring gives the variants and their runtimes; the run
writes one row per net as it goes (a rerun resumes), then summary.txt and
agreement.csv.
"""

from ntkjax.studies import proxy_agreement

from . import launch


def main():
  launch.main(proxy_agreement.run, "proxy_agreement.py")


if __name__ == "__main__":
  main()

"""The floor above the engine: other LRP implementations' conventions and the tools that compare with them.

- :func:`Zennit`, :func:`INNvestigate`, :func:`Captum`, :func:`LXT`: those libraries' conventions as
  :class:`~reflrp.conventions.Profile` values (settings of reflrp's own rules and composites, never rules of their
  own), registered by name here, so that ``explain(..., profile="zennit")`` finds them;
- :func:`compare`: where another implementation's relevance departs from reflrp's, and which profile explains it;
- :func:`profiles_markdown`: the table of every profile's settings that docs/profiles.md shows.

The engine (explain, graph, layers, rules, steps, ledger) imports nothing from here.
"""

from reflrp.compat import captum, innvestigate, lxt, zennit
from reflrp.compat.captum import Captum
from reflrp.compat.compare import Comparison, Departure, Difference, compare, difference
from reflrp.compat.innvestigate import INNvestigate
from reflrp.compat.lxt import LXT
from reflrp.compat.tables import profiles_markdown
from reflrp.compat.zennit import Zennit
from reflrp.conventions import Preset, Profile, as_profile, register

for _module in (zennit, innvestigate, captum, lxt):
    register(*_module.VARIANTS)

__all__ = ["LXT", "Captum", "Comparison", "Departure", "Difference", "INNvestigate", "Preset", "Profile", "Zennit",
           "as_profile", "compare", "difference", "profiles_markdown"]

"""demux: fans each canonical event out into discrete events (DE), one metric each.

A DE is named ``usage.<object>.<metric>`` or ``<entity>.<action>`` and goes to
``org.gooru.da.sink.demux.<bucket>`` keyed by the entity it is about, so that a DEP sees one
entity's DEs in order. The demux emits the lowest dimension only;
DEPs emit the next level up.
"""

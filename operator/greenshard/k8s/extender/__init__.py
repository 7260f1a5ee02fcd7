"""`greenshard extender`: a kube-scheduler extender that filters and scores nodes by carbon.

The HTTP protocol is the one of ``k8s.io/kube-scheduler/extender/v1``: kube-scheduler POSTs an
``ExtenderArgs`` (``Pod``, and ``NodeNames`` when the extender is ``nodeCacheCapable``, else
``Nodes``) to ``/filter`` and ``/prioritize``; the answers are an ``ExtenderFilterResult``
(``NodeNames`` / ``Nodes``, ``FailedNodes``, ``FailedAndUnresolvableNodes``, ``Error``) and a
``HostPriorityList`` (``[{"Host", "Score"}]``, scores 0..10). The Go types carry no JSON tags, so
the keys are the Go field names; Go decodes them case-insensitively and so does this server.

Only pods labelled ``greenshard.io/carbon-aware: "true"`` are judged; every other pod gets all
its nodes back and an empty priority list (nothing added to any node's score), after one JSON
parse and one label lookup. Node facts and the GridProfile come from watches kept in memory
(:class:`ClusterState`), so a request never calls the API server.

Files: :mod:`.wire` (the protocol), :mod:`.state` (the watch cache), :mod:`.scoring` (the verbs),
:mod:`.server` (HTTP), :mod:`.watches` (the API server), :mod:`.metrics`, :mod:`.main` (wiring).
"""

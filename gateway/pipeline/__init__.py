"""The X-ray pipeline, free of HTTP: classifier ∥ ChexFract, then rules, then the report model.

- stages.py: `Pipeline.events()` runs the stages, streamed or not: one async
  generator of the typed events of events.py; `collect()` is the same run for a
  non-streamed answer. requests.py builds the chat calls it makes.
- merge.py: the answer (`cxr`) assembled from the stages' results, in one place.
- clock.py: each stage's start and duration.

- Admission before work: a request takes a slot on all three backends at once,
  before its image is even base64-decoded (`PipelineRequest.image` is called only
  then), so a saturated backend is a 429 that costs nothing, before the first
  byte, and never a stream cut half-way.
- The classifier is required: without it there is nothing honest to report
  (BackendFailed → 503, and ChexFract's call is cancelled). ChexFract and the
  report model are not: when one fails, the result says `partial`, names the
  stage in `warnings`, and leaves that section empty; nothing is made up.
- The report is schema-locked (gateway/clinical/structured.py): the model's JSON
  is collected, validated, and only then rendered into the narrative; output
  that does not validate fails the stage (`partial`, the reason named).
- Cancellation: closing the generator (the client left) cancels whatever
  backend call is pending; the backend sees its connection close and aborts.
"""

"""Clinical content, as reviewed data and the small functions that apply it; no HTTP, no backends.

- content.py: the typed model of rules.yaml and prompts/, loaded and validated once at start-up (`load()`)
- rules.py: the rule tables (risk level, confidence wording, recommendations), first match wins
- abstention.py: what each finding may honestly claim, and why
- fracture_findings.py: the fracture cues read from ChexFract's text
- structured.py: the report's JSON schema (what vLLM decodes against) and its validation
- narrative.py: the validated report rendered as the text a radiologist reads
"""

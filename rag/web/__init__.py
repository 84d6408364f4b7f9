"""The web layer: the service the UI and the API call, the Gradio UI, rendering, messages.

Importing this package loads nothing heavy; `rag.web.ui` and `rag.web.launch` import Gradio.
"""

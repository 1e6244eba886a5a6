"""Client APIs other than chat completions, each a translator at the edge (design rule 11):
parse the API's request into the chat request the pipeline knows, run the one pipeline, render
its answer (and its stream) back in the API's shape; or, when the model picked speaks the API
itself, pass the client's request through and its answer back as it came.

    bridge.py          which translator serves which endpoint; errors in each API's shape
    chunks.py          the pipeline's chat SSE stream, read back as chunk dicts
    usage.py           the chat usage dict in each API's shape (cached input, reasoning)
    messages.py        Anthropic Messages: request -> chat, chat answer -> message
    messages_stream.py chat chunks -> Anthropic SSE events
    responses.py       OpenAI Responses: request -> chat (and the response object's echo)
    response_output.py chat answer -> Responses output items and the final response object
    responses_stream.py chat chunks -> Responses SSE events
    response_store.py  stored responses (previous_response_id, GET, DELETE), per team, with a TTL
    stored.py          GET and DELETE /v1/responses/{id}
    native.py          pass-through to upstreams that speak the API (models.<name>.apis)
"""

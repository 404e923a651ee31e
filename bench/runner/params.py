"""The runners' parameters: defaults, the smoke's, and --set NAME=VALUE."""


def parse_value(text, like):
    """text as the type of like (lists: comma-separated, of like[0]'s type)."""
    if isinstance(like, list):
        return [parse_value(t, like[0] if like else "") for t in text.split(",") if t]
    if isinstance(like, bool):
        return text.lower() in ("1", "true", "yes")
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


def resolve(ap, defaults, smoke, sets):
    """defaults, with smoke's values over them if smoke is not None, then
    every --set; an unknown name is an argparse error."""
    params = dict(defaults)
    if smoke is not None:
        params.update(smoke)
    for item in sets:
        key, _, value = item.partition("=")
        if key not in defaults:
            ap.error(f"unknown parameter {key} (known: {', '.join(defaults)})")
        params[key] = parse_value(value, defaults[key])
    return params

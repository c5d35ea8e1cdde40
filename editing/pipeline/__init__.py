"""The editing pipeline behind `editor.Editor`: `align` (photo -> FFHQ crop), e4e inversion, `prompts` (belief
state -> text), `losses` and `optimizer` (StyleCLIP in W+), `critic` and `refine` (check each requested value,
push what fell short) with thresholds from `calibrate`, and `metrics` (relevance, identity, LPIPS, FID)."""

"""The WeCom boundary: the only app that talks to WeCom (and imports wechatpy)."""

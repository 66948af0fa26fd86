"""A second real editor: Neovim (0.7, Debian) with its built-in LSP client, headless,
receives gradguard's diagnostics for a buggy file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from gradguard.engine.rule import rule_class

from .conftest import server_env

NVIM = shutil.which("nvim")

LUA = r"""
local out = vim.env.GG_OUT
local file = vim.env.GG_FILE
local cmd = vim.fn.json_decode(vim.env.GG_CMD)
local done = false

local function write(payload)
  local f = io.open(out, "w")
  f:write(vim.fn.json_encode(payload))
  f:close()
end

vim.cmd("edit " .. vim.fn.fnameescape(file))
local bufnr = vim.api.nvim_get_current_buf()
vim.bo[bufnr].filetype = "python"

local client_id = vim.lsp.start_client({
  name = "gradguard",
  cmd = cmd,
  root_dir = vim.fn.fnamemodify(file, ":h"),
  init_options = { settings = { debounceMs = 0 } },
  handlers = {
    ["textDocument/publishDiagnostics"] = function(err, result, ctx, config)
      if result and result.uri == vim.uri_from_bufnr(bufnr) and #result.diagnostics > 0 then
        write({ uri = result.uri, diagnostics = result.diagnostics,
                server = vim.lsp.get_client_by_id(ctx.client_id).name })
        done = true
      end
    end,
  },
})
vim.lsp.buf_attach_client(bufnr, client_id)
vim.wait(60000, function() return done end, 50)
if not done then write({ error = "no diagnostics received" }) end
vim.lsp.stop_client(client_id)
vim.wait(2000, function() return vim.lsp.get_client_by_id(client_id) == nil end, 50)
vim.cmd("qall!")
"""


@pytest.mark.slow
@pytest.mark.skipif(NVIM is None, reason="Neovim is not installed (apt-get install -y neovim)")
def test_neovim_receives_diagnostics(tmp_path):
    example = rule_class("GG202").INVALID[0]
    source = tmp_path / "model.py"
    source.write_text(example.code)
    script = tmp_path / "client.lua"
    script.write_text(LUA)
    out = tmp_path / "out.json"
    env = server_env(
        GG_OUT=str(out),
        GG_FILE=str(source),
        GG_CMD=json.dumps([sys.executable, "-m", "gradguard", "lsp"]),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    subprocess.run(
        [NVIM, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {script}"],
        env=env,
        timeout=120,
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    assert "error" not in result, result
    assert result["server"] == "gradguard"
    gg202 = [d for d in result["diagnostics"] if d["code"] == "GG202"]
    assert len(gg202) == 1
    assert gg202[0]["range"]["start"]["line"] == example.lines[0] - 1
    assert gg202[0]["source"] == "gradguard"

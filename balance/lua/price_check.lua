-- price_check.lua: evaluate the Lua price functions, for the property test that holds them equal
-- to tariffs/price.py. No keys, no writes.
-- ARGV[1] msgpack list of {price, units, used_before, money}
-- Returns msgpack list of {retail(units), wholesale(units), affordable(used_before, money)}.
local cases = mp_unpack(ARGV[1])
local out = {}
for i, c in ipairs(cases) do
  local p = check_price(c[1], 'price')
  out[i] = {retail(p, c[2]), wholesale(p, c[2]), affordable(p, c[3], c[4])}
end
return mp_pack(out)

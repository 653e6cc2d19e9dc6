-- Specs of the marketing_request hooks: `trellis hooks test samples/marketing`.
-- Each `it` runs in its own transaction, rolled back afterwards, as an administrator;
-- trellis.as(user, fn) acts as someone else.

local function draft(fields)
  local r = {title = "Spring roadshow", partner = "  Acme Ltd  ", region = "east", budget = 12000,
             start_date = "2027-03-01"}
  for k, v in pairs(fields or {}) do r[k] = v end
  return trellis.create("marketing_request", r)
end

describe("submitting a request", function()
  it("trims the partner name", function()
    local r = draft()
    local s = trellis.transition("marketing_request", r.id, "submit")
    expect(s.state).to_be("submitted")
    expect(s.partner).to_be("Acme Ltd")
  end)

  it("refuses a zero budget, naming the field", function()
    local r = draft({budget = 0})
    local err = expect(function()
      trellis.transition("marketing_request", r.id, "submit")
    end).to_fail("budget above zero")
    expect(err.status).to_be(422)
    expect(err.errors[1].field).to_be("budget")
    -- The refused transition changed nothing.
    expect(trellis.get("marketing_request", r.id).state).to_be("draft")
  end)
end)

describe("creating a request", function()
  it("keeps Chinese text as it was given", function()
    local r = draft({title = "春季路演 · 华东区", partner = "上海某某科技有限公司"})
    expect(trellis.get("marketing_request", r.id).title).to_be("春季路演 · 华东区")
  end)

  it("refuses a negative budget with the field's rule", function()
    local err = expect(function() draft({budget = -1}) end).to_fail()
    expect(err.status).to_be(422)
    expect(err.errors[1].field).to_be("budget")
  end)

  it("starts every test from the installed app", function()
    expect(trellis.count("marketing_request")).to_be(0)
  end)
end)

-- Specs of the channel-marketing hooks: `trellis hooks test modules/channel-marketing`.
-- Users, orgs and groups come from tests/fixtures.json; each `it` starts from the installed app.

local PAT = "pat"   -- partner user of acme
local GUS = "gus"   -- partner user of globex

local function new_request(fields)
  local r = {
    title = "春季路演 Spring roadshow", partner = "  Acme Trading  ", region = "east",
    budget = 80000, start_date = "2027-03-01", end_date = "2027-03-31",
    activity_type = "roadshow", channel = "distributor",
    plan = "## Goals\n- 300 leads\n- 3 cities", expected_leads = 300,
    materials = {{item = "brochure 宣传册", qty = 500}, {item = "banner", qty = 6, region = "north"}},
  }
  for k, v in pairs(fields or {}) do r[k] = v end
  return trellis.as(PAT, function() return trellis.create("marketing_request", r) end)
end

-- Submit as the partner, start the review as the channel manager, then approve both reviews as
-- an administrator (who overrides the approvals: the approval flows are driven over HTTP in the
-- end-to-end test).
local function approve(id)
  trellis.as(PAT, function() trellis.transition("marketing_request", id, "submit") end)
  trellis.as("cora", function() trellis.transition("marketing_request", id, "start_review") end)
  trellis.transition("marketing_request", id, "marketing_approve")
  return trellis.transition("marketing_request", id, "finance_approve")
end

describe("a partner's request", function()
  it("is assigned to a marketing reviewer in turn when submitted", function()
    local a = new_request()
    local b = new_request()
    trellis.as(PAT, function()
      trellis.transition("marketing_request", a.id, "submit")
      trellis.transition("marketing_request", b.id, "submit")
    end)
    local ra, rb = trellis.get("marketing_request", a.id), trellis.get("marketing_request", b.id)
    expect(ra.marketing_reviewer).never.to_be(rb.marketing_reviewer)
    expect(ra.partner).to_be("Acme Trading")
  end)

  it("refuses bad material lines, naming the field", function()
    local err = expect(function() new_request({materials = {{item = "", qty = 0}}}) end).to_fail()
    expect(err.status).to_be(422)
    expect(err.errors[1].field).to_be("materials")
  end)

  it("refuses an end date before the start date", function()
    local err = expect(function()
      new_request({start_date = "2027-03-10", end_date = "2027-03-01"})
    end).to_fail()
    expect(err.errors[1].field).to_be("end_date")
  end)

  it("is invisible to a partner of another org", function()
    local r = new_request()
    trellis.as(GUS, function()
      expect(trellis.get("marketing_request", r.id)).to_be_nil()
      expect(trellis.count("marketing_request")).to_be(0)
    end)
  end)
end)

describe("approval", function()
  it("spawns a delivery task per material line and a claim capped at the approved budget", function()
    local r = new_request()
    local done = approve(r.id)
    expect(done.state).to_be("approved")
    expect(done.approved_budget).to_be(80000)
    local tasks = trellis.query("material_delivery_task", "request = " .. r.id, {sort = "id"})
    expect(#tasks).to_be(2)
    expect(tasks[1].item).to_be("brochure 宣传册")
    expect(tasks[1].region).to_be("east")   -- the request's region
    expect(tasks[2].region).to_be("north")  -- the line's own
    expect(tasks[1].org).to_be("acme")      -- the partner follows them
    expect(tasks[1].assignee).to_be("lee")  -- logistics for the east region
    local claims = trellis.query("reimbursement_claim", "request = " .. r.id)
    expect(#claims).to_be(1)
    expect(claims[1].cap).to_be(80000)
    expect(claims[1].org).to_be("acme")
    -- The partner sees the tasks and the claim of their own request.
    trellis.as(PAT, function()
      expect(trellis.count("material_delivery_task", "request = " .. r.id)).to_be(2)
      expect(#trellis.query("reimbursement_claim", "request = " .. r.id)).to_be(1)
    end)
  end)
end)

describe("the reimbursement claim", function()
  local function claim_of(id)
    return trellis.query("reimbursement_claim", "request = " .. id)[1]
  end

  it("refuses an amount above the cap", function()
    local r = new_request({budget = 1000})
    approve(r.id)
    local c = claim_of(r.id)
    local err = trellis.as(PAT, function()
      return expect(function()
        trellis.update("reimbursement_claim", c.id, {amount = "1000.01"})
      end).to_fail()
    end)
    expect(err.status).to_be(422)
    expect(err.errors[1].field).to_be("amount")
    expect(claim_of(r.id).amount).to_be_nil()
  end)

  it("needs receipts: a list of invoice numbers or file ids, at least one to submit", function()
    local r = new_request({budget = 1000})
    approve(r.id)
    local c = claim_of(r.id)
    trellis.as(PAT, function()
      trellis.transition("marketing_request", r.id, "start_execution")
      for _, bad in ipairs({{1}, {""}, {x = "INV-1"}, "INV-1"}) do
        local err = expect(function()
          trellis.update("reimbursement_claim", c.id, {amount = 500, receipts = bad})
        end).to_fail()
        expect(err.status).to_be(422)
        expect(err.errors[1].field).to_be("receipts")
      end
      trellis.update("reimbursement_claim", c.id, {amount = 500, receipts = {}})
      local err = expect(function()
        trellis.transition("reimbursement_claim", c.id, "submit")
      end).to_fail("at least one receipt")
      expect(err.errors[1].field).to_be("receipts")
      trellis.update("reimbursement_claim", c.id, {receipts = {"INV-2027-0002", "发票-0003"}})
      trellis.transition("reimbursement_claim", c.id, "submit")
    end)
    expect(claim_of(r.id).state).to_be("finance_review")
  end)

  it("is submitted only once the activity runs, and paying it closes the request", function()
    local r = new_request({budget = 1000})
    approve(r.id)
    local c = claim_of(r.id)
    trellis.as(PAT, function()
      trellis.update("reimbursement_claim", c.id, {amount = 950, receipts = {"INV-2027-0001"}})
      expect(function() trellis.transition("reimbursement_claim", c.id, "submit") end)
        .to_fail("start the activity")
      trellis.transition("marketing_request", r.id, "start_execution")
      trellis.transition("reimbursement_claim", c.id, "submit")
    end)
    trellis.transition("reimbursement_claim", c.id, "approve")
    trellis.as("fay", function()
      trellis.transition("reimbursement_claim", c.id, "pay", {paid_on = "2027-04-15"})
    end)
    expect(trellis.get("marketing_request", r.id).state).to_be("closed")
  end)
end)
